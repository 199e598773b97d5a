/** The package ships no types: it returns prom2json's shape (typed where used, test/support/prometheus.ts). */
declare module "parse-prometheus-text-format" {
  const parse: (text: string) => ReadonlyArray<unknown>
  export default parse
}
