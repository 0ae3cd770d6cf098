"""Recipe: evaluate a checkpoint on a labeled JSONL file.

    python training/evaluate.py --model runs/tiny --data ../shared/eval/real-news-dev.jsonl
"""

import sys
from pathlib import Path

# Python puts this folder first on sys.path; its evaluate.py would shadow the `evaluate` library.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

from vitopic.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
