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
    // One section per subcommand with its own options, as `git help` pages do.
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        writeln!(
            out,
            ".SH \"{}\"",
            sub.get_name().to_uppercase().replace('-', "\\-")
        )?;
        let sub_page =
            clap_mangen::Man::new(sub.clone().bin_name(format!("jidstore {}", sub.get_name())));
        sub_page.render_synopsis_section(out)?;
        sub_page.render_description_section(out)?;
        sub_page.render_options_section(out)?;
    }
    Ok(0)
}
