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

/// Exit codes, for the man page's EXIT STATUS (README.md, "CLI", says the same).
const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success."),
    (
        "1",
        "An operational error, reported in one line on standard error that starts with \
         \"jidstore:\" and names the JID or path. Also: verify found problems; import refused \
         a user or missed an include target; unregister's erasure committed but deleting the \
         archive records failed (it resumes on the next open); unregister --from-file had a \
         subject that failed or a malformed line (then nothing was erased).",
    ),
    (
        "2",
        "A usage error (a bad argument or option), reported by the argument parser.",
    ),
    (
        "3",
        "unregister erased nothing: there is no account and the store holds only data that \
         erasure keeps (e.g. a second unregister), and --redact-kept was not given (with it, \
         that data is pseudonymised: exit 0). Nothing held at all is exit 1.",
    ),
];

/// Environment variables the command reads, for the man page's ENVIRONMENT.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "JIDSTORE_DATA_DIR",
        "The data directory when --data-dir is not given (not used by demo).",
    ),
    (
        "JIDSTORE_DATABASE_URL",
        "A PostgreSQL database (postgres://...) to use instead of a data directory, when \
         --database is not given.",
    ),
    (
        "XDG_DATA_HOME, HOME",
        "Without either of the above, the data directory is $XDG_DATA_HOME/jidstore, else \
         $HOME/.local/share/jidstore.",
    ),
    (
        "JIDSTORE_MIN_FREE",
        "The free space kept on the data directory's filesystem: writes that add data are \
         refused below it. Bytes, or with a K, M or G suffix (64M); 0 turns it off. Default: 5% \
         of the filesystem, at least 4 MiB and at most 64 MiB.",
    ),
    (
        "JIDSTORE_PROGRESS",
        "always or never: draw progress lines on standard error, or not. Default: only when \
         standard error is a terminal; never with --json.",
    ),
    (
        "TMPDIR",
        "Where demo creates its directory when --data-dir is not given.",
    ),
    (
        "JIDSTORE_ADMIN_TIMEOUT",
        "Seconds (decimals allowed) a command forwarded to a server's admin socket waits for \
         the next byte before it gives up. Default: 30.",
    ),
    (
        "JIDSTORE_TEST_PAUSE",
        "For signal tests only, never set otherwise: the process stops at the named point and \
         waits for a signal.",
    ),
    (
        "JIDSTORE_TEST_KILL_AT",
        "For crash tests only, never set otherwise: the process kills itself (SIGKILL) at the \
         named step of backup or compact's copy, migrate, or an erasure (`erase:in-commit`, \
         `erase:committed`, `erase:swept-chunk`).",
    ),
];

/// `jidstore man`: one man page (roff) on stdout, with a section per subcommand.
pub(super) fn man(out: &mut dyn Write) -> anyhow::Result<u8> {
    let cmd = Args::command();
    let page = clap_mangen::Man::new(cmd.clone());
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_options_section(out)?;
    // Not clap_mangen's subcommand list: it points to jidstore-<name>(1) pages, and there
    // are none; every subcommand has its section in this page.
    writeln!(out, ".SH SUBCOMMANDS")?;
    writeln!(out, "Each has a section with its options below.")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        if name == "help" {
            continue;
        }
        let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
        writeln!(
            out,
            ".TP\n\\fBjidstore {}\\fR\n{}",
            roff(name),
            roff(&about)
        )?;
    }
    // One section per subcommand (and per nested one, as `mam query`) with its options.
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        subcommand_section(out, sub, "jidstore")?;
    }
    list_section(out, "EXIT STATUS", EXIT_STATUS)?;
    list_section(out, "ENVIRONMENT", ENVIRONMENT)?;
    page.render_version_section(out)?;
    Ok(0)
}

/// A section of tagged paragraphs.
fn list_section(out: &mut dyn Write, title: &str, items: &[(&str, &str)]) -> anyhow::Result<()> {
    writeln!(out, ".SH \"{title}\"")?;
    for (tag, text) in items {
        writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(tag), roff(text))?;
    }
    Ok(())
}

/// `text` as roff body text: backslashes and hyphens escaped, no line starting a request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
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
