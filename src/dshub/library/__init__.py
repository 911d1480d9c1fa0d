"""What a Python user calls: :class:`~dshub.library.client.Client`, the lazy dataset tree
(``tree``), the ``dshub://`` fsspec filesystem (``fs``) and the credential formats
(``creds_format``). Never prints; the CLI is a thin skin over it."""
