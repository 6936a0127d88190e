"""Time bank (时间银行): the elder-care credit ledger. See docs/timebank.md."""
