"""Reference (numpy) execution of tinytrain plans: the specification the C runtime is tested
against."""
