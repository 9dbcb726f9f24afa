"""`python -m sessionforge` is the `sessionforge` command."""

from sessionforge.cli import main

if __name__ == "__main__":
    main()
