"""Stores read over the network: the reader guarded by manifests (:mod:`.reader`), loopback
servers that count every request over an emulated network (:mod:`.serve` for HTTP, :mod:`.s3`
for S3), and what each access pattern costs (:mod:`.measure`, the workflow's ``remote`` step)."""
