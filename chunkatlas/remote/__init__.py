"""Stores read over the network: the reader guarded by manifests (:mod:`.reader`), loopback
servers that count every request (:mod:`.serve`), and what each access pattern costs
(:mod:`.measure`, the workflow's ``remote`` step)."""
