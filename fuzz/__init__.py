"""Coverage-guided fuzzing of qsafe's parsers (atheris / libFuzzer). See fuzz/README.md."""
