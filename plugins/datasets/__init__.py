"""Dataset plugins (the embedded phantom, real CT formats)."""
