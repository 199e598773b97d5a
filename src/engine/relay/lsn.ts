/** PostgreSQL WAL positions (`X/Y` hex text) as comparable numbers. */
export const lsnToBigInt = (lsn: string): bigint => {
  const [hi = "0", lo = "0"] = lsn.split("/")
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`)
}

const lsnText = (n: bigint) =>
  `${(n >> 32n).toString(16).toUpperCase()}/${(n & 0xffffffffn).toString(16).toUpperCase()}`

/** The position just before `lsn` (not below 0/0). */
export const previousLsn = (lsn: string) => {
  const n = lsnToBigInt(lsn)
  return lsnText(n > 0n ? n - 1n : 0n)
}
