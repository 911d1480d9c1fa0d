"""Small helpers every layer may use: private atomic writes, human units, the cache folder,
finding rclone. Nothing here imports another part of dshub except ``dshub.errors``."""
