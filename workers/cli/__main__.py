"""``python -m workers.cli``: the ``trailpipe`` command."""
from workers.cli import main

if __name__ == "__main__":
    main()
