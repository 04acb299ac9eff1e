/**
 * The influxd `npm start` runs (nodes/lib/local-influxd.ts), with the real Debian influxd: data and ports kept
 * across restarts, and an influxd left running by a start that was killed is stopped by the next one.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { findBinary, startLocalInfluxd, type LocalInfluxd } from '../../nodes/lib/local-influxd';
import { processAlive } from '../../nodes/lib/process-alive';
import { influxRows, requireBinary, tempDir } from '../support/servers';

describe('local influxd of npm start', () => {
  const dir = tempDir('local-influxd');
  const bin = requireBinary('influxd', 'influxdb');
  let server: LocalInfluxd | undefined;

  after(async () => {
    await server?.stop();
    dir.remove();
  });

  it('finds influxd on PATH or in sbin, and nothing on an empty PATH', () => {
    assert.equal(findBinary('influxd'), bin);
    assert.equal(findBinary('influxd', '', []), undefined);
  });

  it('creates the database, and a start after a killed one stops the leftover and keeps data and port', async () => {
    const first = await startLocalInfluxd({ bin, dir: dir.path, database: 'iot' });
    const write = await fetch(`${first.url}/write?db=iot`, {
      method: 'POST',
      body: 'm,device=d v=1 1000000000',
    });
    assert.equal(write.status, 204);
    // The start that owned `first` is gone without stopping it (kill -9): the next start finds it by its state.
    server = await startLocalInfluxd({ bin, dir: dir.path, database: 'iot' });
    assert.equal(processAlive(first.pid), false, 'the leftover influxd was stopped');
    assert.notEqual(server.pid, first.pid);
    assert.equal(server.url, first.url, 'the ports of the last start, free again');
    assert.deepEqual(await influxRows(server.url, 'iot', 'SELECT v FROM m'), [
      { time: '1970-01-01T00:00:01Z', v: 1 },
    ]);
  });
});
