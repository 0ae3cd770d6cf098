"""Recipe: masked-LM pretraining of a mini-PhoBERT from a YAML config.

python training/pretrain.py --config configs/pretrain-mini.yaml [key.sub=value ...] [--resume]
"""

import sys

from vitopic.cli import main

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
