"""Talking to a hub: the typed HTTP client (``client``), where the token comes from
(``auth``) and the client's profiles (``config``). Knows nothing of rclone or terminals."""
