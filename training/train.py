"""Recipe: fine-tune from a YAML config.

    python training/train.py --config configs/tiny.yaml [key.sub=value ...] [--resume]

Works unchanged under `accelerate launch` and `torchrun`.
"""

import sys

from vitopic.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
