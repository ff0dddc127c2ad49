"""Accounts: who may send, from where and as whom, how much, and who pays.

`policy` decides (pure functions over an account, a request and its usage),
`book` keeps accounts and usage in memory and in the store, `reports` reads
traffic and billing back, `admin` serves them over HTTP and `cli` on the
command line. `Gateway.submit` asks the book once per submission, whichever
ingress it came through.
"""
