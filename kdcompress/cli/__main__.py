"""``python -m kdcompress.cli`` (what torchrun and the tests start)."""

from kdcompress.cli import main

if __name__ == "__main__":
    main()
