//! What a finished `deckhand` process said, for assertions (`support::text`,
//! `support::assert_exit`). It only reads the output; it never runs anything.

use std::process::Output;

/// Its stdout, then its stderr, as one text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Assert its exit code, showing everything it said when the code differs.
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status; output:\n{}",
        text(o)
    );
}
