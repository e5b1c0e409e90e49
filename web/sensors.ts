/**
 * What a page can read of its device's conditions: the JS heap headroom (Chromium's
 * performance.memory) or navigator.deviceMemory for available memory, and the Battery Status API.
 * CPU used by other processes and temperature are not visible to a page (null).
 */
import type { SensorReading, Sensors } from '../agent/core/monitor.js';

interface BatteryManager {
  charging: boolean;
  level: number;
}

export function browserSensors(): Sensors {
  let battery: SensorReading['battery'] = null;
  const nav = globalThis.navigator as { getBattery?: () => Promise<BatteryManager>; deviceMemory?: number } | undefined;
  const poll = () =>
    nav
      ?.getBattery?.()
      .then((b) => (battery = { onBattery: !b.charging, percent: Math.round(b.level * 100) }))
      .catch(() => undefined);
  void poll();
  return {
    read(): SensorReading {
      void poll();
      const mem = (globalThis.performance as { memory?: { jsHeapSizeLimit: number; usedJSHeapSize: number } }).memory;
      const availableMB = mem ? (mem.jsHeapSizeLimit - mem.usedJSHeapSize) / (1024 * 1024) : nav?.deviceMemory ? nav.deviceMemory * 1024 : null;
      return { othersCpu: null, availableMB, battery, temperatureC: null };
    },
  };
}
