//! `completions` and `man`: generated from the clap definitions, so they never drift from
//! the parser.

use std::io::Write;

use clap::CommandFactory;

use super::Args;

/// `jidstore completions <shell>`: the completion script on stdout.
pub(super) fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> anyhow::Result<u8> {
    let mut cmd = Args::command();
    // clap_complete panics on a failed write (`| head`): generate, then write.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "jidstore", &mut script);
    out.write_all(&script)?;
    Ok(0)
}

/// `jidstore man`: the man page (roff) on stdout, subcommands included.
pub(super) fn man(out: &mut dyn Write) -> anyhow::Result<u8> {
    let cmd = Args::command();
    let page = clap_mangen::Man::new(cmd.clone());
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_options_section(out)?;
    page.render_subcommands_section(out)?;
    page.render_version_section(out)?;
    // One section per subcommand (and per nested one, as `mam query`) with its options.
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        subcommand_section(out, sub, "jidstore")?;
    }
    Ok(0)
}

fn subcommand_section(
    out: &mut dyn Write,
    sub: &clap::Command,
    parent: &str,
) -> anyhow::Result<()> {
    let name = format!("{parent} {}", sub.get_name());
    if sub.get_name() == "help" {
        return Ok(());
    }
    writeln!(out, ".SH \"{}\"", name.to_uppercase().replace('-', "\\-"))?;
    let page = clap_mangen::Man::new(sub.clone().bin_name(name.clone()));
    let mut text = Vec::new();
    page.render_synopsis_section(&mut text)?;
    page.render_description_section(&mut text)?;
    page.render_options_section(&mut text)?;
    // Inside this section, clap_mangen's sections become subsections.
    let text = String::from_utf8_lossy(&text).replace(".SH ", ".SS ");
    out.write_all(text.as_bytes())?;
    for nested in sub.get_subcommands().filter(|s| !s.is_hide_set()) {
        subcommand_section(out, nested, &name)?;
    }
    Ok(())
}
