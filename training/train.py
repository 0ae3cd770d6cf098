"""Recipe: fine-tune from a YAML config.

    python training/train.py --config configs/tiny.yaml [key.sub=value ...] [--resume]

Works unchanged under `accelerate launch` and `torchrun`.
"""

import sys
from pathlib import Path

# Python puts this folder first on sys.path; its evaluate.py would shadow the `evaluate` library.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

from vitopic.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
