//! `init`: an empty store, created the way `register` and `import` create one.

use std::io::Write;

use serde_json::json;

use super::Env;

/// `jidstore init`: creates the store when the data directory is missing or empty; on an
/// existing store it changes nothing and says so. Exit 0 either way (idempotent, like
/// `mkdir -p`); anything else in the directory (not a store, damaged, locked) is an error.
pub(super) fn run(env: &Env<'_>, out: &mut dyn Write) -> anyhow::Result<u8> {
    let created = env.no_store_yet();
    let store = env.open(created)?;
    store.flush()?;
    let dir = super::path_json(store.path());
    let text = if created {
        format!("created an empty store in {}\n", store.path().display())
    } else {
        format!(
            "a store already exists in {}; nothing changed\n",
            store.path().display()
        )
    };
    env.emit(out, &json!({ "path": dir, "created": created }), &text)?;
    Ok(0)
}
