"""Recipe: evaluate a checkpoint on a labeled JSONL file.

python training/eval.py --model runs/tiny --data ../shared/eval/real-news-dev.jsonl
"""

import sys

from vitopic.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
