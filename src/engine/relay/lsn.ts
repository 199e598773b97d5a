/** PostgreSQL WAL positions (`X/Y` hex text) as comparable numbers. */
export const lsnToBigInt = (lsn: string): bigint => {
  const [hi = "0", lo = "0"] = lsn.split("/")
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`)
}
