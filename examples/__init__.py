"""Runnable examples, one script per pattern (see README.md); `workspace/` is the sample project they work on."""
