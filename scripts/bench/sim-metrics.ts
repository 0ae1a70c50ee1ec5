/** What a simulated worker reports in each heartbeat, for the fleet simulator and the join simulator alike. */
export function metrics(seq: number) {
  // About the size and shape of a real summary (see src/protocol/metrics.ts): ~280 bytes of JSON with the frame.
  return {
    cpu: Math.round(Math.random() * 1000) / 10,
    load1: Math.round(Math.random() * 400) / 100,
    cores: 8,
    mem: 30 + (seq % 40),
    memTotal: 16_777_216_000,
    swap: 0,
    disk: { mount: "/", used: 41.5 },
    battery: null,
    net: { rx: 1200 + seq, tx: 800 + seq },
    temp: 47.5,
    uptime: 86_400 + seq * 5,
    errors: [],
  };
}
