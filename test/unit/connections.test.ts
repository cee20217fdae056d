/**
 * The connection caps as a pure count: per client address, in all, the reserve past MAX_CONNECTIONS,
 * and what happens when everything is taken (the idle connection held longest makes room; only when
 * every connection is busy is the new one refused).
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type http from 'node:http';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { clientKey } from '../../src/client-address';
import { ConnectionGate, connectionsTheFdLimitAllows } from '../../src/connections';

class FakeSocket extends EventEmitter {
  destroyed = false;
  constructor(readonly remoteAddress: string) {
    super();
  }
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    queueMicrotask(() => this.emit('close'));
  }
}

const socket = (address: string) => new FakeSocket(address) as unknown as Socket & FakeSocket;
const response = () => new EventEmitter() as unknown as http.ServerResponse;

describe('the connection gate', () => {
  it('admits MAX_CONNECTIONS_PER_CLIENT from one address, then refuses it; other addresses go on', () => {
    const gate = new ConnectionGate(10, 2, 1);
    assert.equal(gate.admit(socket('10.0.0.1')), 'open');
    assert.equal(gate.admit(socket('::ffff:10.0.0.1')), 'open');
    assert.equal(gate.admit(socket('10.0.0.1')), 'client_full');
    assert.equal(gate.admit(socket('10.0.0.2')), 'open');
    assert.equal(gate.held, 3);
  });

  it('gives a connection back when it closes', async () => {
    const gate = new ConnectionGate(10, 1, 1);
    const s = socket('10.0.0.1');
    assert.equal(gate.admit(s), 'open');
    s.destroy();
    await new Promise((r) => setImmediate(r));
    assert.equal(gate.held, 0);
    assert.equal(gate.admit(socket('10.0.0.1')), 'open');
  });

  it('past MAX_CONNECTIONS admits into the reserve; past the reserve closes the idle connection held longest', () => {
    const gate = new ConnectionGate(2, 5, 1);
    const [a, b] = [socket('10.0.0.1'), socket('10.0.0.2')];
    assert.equal(gate.admit(a), 'open');
    assert.equal(gate.admit(b), 'open');
    assert.equal(gate.admit(socket('10.0.0.3')), 'reserve');
    gate.busy(a, response());
    assert.equal(gate.admit(socket('10.0.0.4')), 'reserve');
    assert.equal(a.destroyed, false, 'a connection with a request in progress is kept');
    assert.equal(b.destroyed, true, 'the idle connection held longest made room');
    assert.equal(gate.evicted, 1);
  });

  it('refuses a new connection only when every connection is busy', () => {
    const gate = new ConnectionGate(1, 5, 1);
    const all = [socket('10.0.0.1'), socket('10.0.0.2')];
    for (const s of all) gate.admit(s);
    const res = all.map((s) => {
      const r = response();
      gate.busy(s, r);
      return r;
    });
    assert.equal(gate.admit(socket('10.0.0.3')), 'full');
    res[1].emit('close');
    assert.equal(gate.admit(socket('10.0.0.3')), 'reserve');
    assert.equal(all[1].destroyed, true);
  });
});

describe('client addresses', () => {
  it('an IPv4 address written as IPv6 is the IPv4 one; an IPv6 address counts as its /64', () => {
    assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(clientKey('192.0.2.7'), '192.0.2.7');
    assert.equal(clientKey('2001:db8:1:2:aaaa::1'), clientKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'));
    assert.notEqual(clientKey('2001:db8:1:2::1'), clientKey('2001:db8:1:3::1'));
    assert.equal(clientKey('::1'), '0:0:0:0::/64');
    assert.equal(clientKey(undefined), 'unknown');
  });
});

describe('the open-files limit', () => {
  it('leaves room for a connection to Ollama beside each client connection, the reserve and some headroom', () => {
    assert.equal(connectionsTheFdLimitAllows(1024, 32), 416);
    assert.equal(connectionsTheFdLimitAllows(undefined), undefined);
    assert.equal(connectionsTheFdLimitAllows(100, 32), 1);
  });
});
