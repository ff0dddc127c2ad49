"""Where messages and reports go out to users' systems (callbacks, and later e-mail, files)."""
