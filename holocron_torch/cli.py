def main(argv=None) -> int:
    """Placeholder until the CLI lands."""
    raise SystemExit("holocron-optim: not implemented yet")
