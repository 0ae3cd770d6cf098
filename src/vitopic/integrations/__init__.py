"""Adapters from vitopic to other engines; each needs its optional extra (`pip install 'vitopic[ray]'`)."""
