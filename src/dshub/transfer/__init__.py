"""The transfer engine: rclone-driven upload, download and streaming.

* ``upload.upload(client, path, ref, options=, on_event=)`` — resumable upload + commit
  (an :class:`~dshub.transfer.upload.Upload` run; phases 5-8 in ``session_run``);
* ``download.download(client, ref, dest, ...)`` (a ``Download`` in phases) and
  ``cat.cat(client, ref, out)`` (also importable from ``download``);
* ``rclone`` — finding rclone, argv/env construction, exit codes; ``failures`` — rclone's
  error lines by kind; ``destination`` — can a folder take the files; ``runner`` — process
  control; ``scan`` — local tree rules; ``stats`` — progress events;
  ``credential_process`` — credential refresh inside a running rclone.

The engine never prints or prompts: it emits ``stats`` events and raises
``dshub.errors`` exceptions. Importing this package imports none of its modules.
"""
