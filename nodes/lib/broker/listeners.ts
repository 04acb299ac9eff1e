/**
 * The network side: MQTT over TCP or TLS and optionally MQTT over WebSocket, with the connection limits applied
 * before a connection reaches aedes (open connections at most, a per-address rate with a short queue, the
 * packet-size guard). Each admitted connection is handed on as a stream to `handle`.
 */
import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { securityEvent, type SecurityEvent } from '../security-events';
import { guardFrames } from './frame-guard';
import { RateLimiter } from './limits';
import { connectionsGauge, refusedTotal } from './metrics';
import type { BrokerLimits, ListenOptions } from './options';

export interface ListenerHooks {
  /** An admitted connection (its packet sizes checked by guardFrames), from `ip`. */
  handle(conn: Duplex, ip: string): void;
  security(ev: SecurityEvent): void;
  /** A listener failed after it started. */
  error(err: Error): void;
}

export class Listeners {
  readonly rate: RateLimiter;
  private readonly servers: (NetServer | HttpServer)[] = [];
  private wss: WebSocketServer | undefined;
  private readonly rawSockets = new Set<Socket>();
  /** Connections waiting for their turn under the per-address rate, with their timers. */
  private readonly queued = new Map<Duplex, NodeJS.Timeout>();
  private readonly connections = new Set<Duplex>();
  private rateLimitedSinceEvent = 0;
  private lastRateLimitEvent = 0;
  private closing = false;

  constructor(
    private readonly limits: BrokerLimits,
    private readonly hooks: ListenerHooks,
  ) {
    this.rate = new RateLimiter(limits.connectRatePerIp, limits.connectBurstPerIp, limits.maxTrackedKeys);
  }

  /** Open connections (admitted, not yet closed). */
  get size(): number {
    return this.connections.size;
  }

  async listen(opts: ListenOptions): Promise<void> {
    const onSocket = (socket: Socket): void => this.accept(socket, socket.remoteAddress ?? 'unknown');
    const mqtt = opts.tls
      ? createTlsServer({ ...opts.tls, handshakeTimeout: this.limits.connectTimeoutMs }, onSocket)
      : createNetServer(onSocket);
    await this.bind(mqtt, opts.host, opts.port);
    if (opts.ws) {
      const http = createHttpServer((_req, res) => {
        res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket only\n');
      });
      this.wss = new WebSocketServer({
        server: http,
        path: opts.ws.path,
        maxPayload: this.limits.maxPacketBytes,
      });
      this.wss.on('connection', (ws, req) => {
        const stream = createWebSocketStream(ws);
        this.accept(stream, req.socket.remoteAddress ?? 'unknown');
      });
      await this.bind(http, opts.ws.host, opts.ws.port);
    }
  }

  /** Stops accepting; resolves once every server closed (call `destroyConnections` meanwhile). */
  stopListening(): Promise<void> {
    this.closing = true;
    const closed = this.servers.map((s) => (s.listening ? once(s, 'close') : Promise.resolve()));
    for (const s of this.servers) if (s.listening) s.close();
    this.wss?.close();
    return Promise.all(closed).then(() => undefined);
  }

  /** Destroys queued and open connections and the sockets under them. */
  destroyConnections(): void {
    this.closing = true;
    for (const [stream, timer] of this.queued) {
      clearTimeout(timer);
      stream.destroy();
    }
    this.queued.clear();
    for (const c of this.connections) c.destroy();
    for (const s of this.rawSockets) s.destroy();
  }

  private async bind(server: NetServer | HttpServer, host: string, port: number): Promise<void> {
    server.on('connection', (s: Socket) => {
      this.rawSockets.add(s);
      s.once('close', () => this.rawSockets.delete(s));
    });
    server.on('tlsClientError', (_err: Error, s: Socket) => s.destroy());
    server.maxConnections = this.limits.maxConnections; // also bounds TLS handshakes not yet accepted
    this.servers.push(server);
    server.listen(port, host);
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([err]) => Promise.reject(err as Error)),
    ]);
    server.on('error', (err) => this.hooks.error(err));
  }

  private accept(stream: Duplex, ip: string): void {
    if (this.closing) return void stream.destroy();
    if (this.connections.size >= this.limits.maxConnections) {
      refusedTotal.labels('max_connections').inc();
      return void stream.destroy();
    }
    const waitMs = this.rate.reserve(ip, this.limits.connectQueueMs);
    if (waitMs < 0) {
      refusedTotal.labels('connect_rate').inc();
      this.rateLimited(ip);
      return void stream.destroy();
    }
    if (waitMs > 0) {
      // Its token is taken: it waits for its turn (a connection closed meanwhile just goes).
      const timer = setTimeout(() => {
        this.queued.delete(stream);
        if (!stream.destroyed) this.admit(stream, ip);
      }, waitMs);
      this.queued.set(stream, timer);
      return;
    }
    this.admit(stream, ip);
  }

  private admit(stream: Duplex, ip: string): void {
    if (this.closing) return void stream.destroy();
    if ('setNoDelay' in stream) (stream as Socket).setNoDelay(true);
    guardFrames(stream, this.limits.maxPacketBytes);
    this.connections.add(stream);
    connectionsGauge.set(this.connections.size);
    stream.once('close', () => {
      this.connections.delete(stream);
      connectionsGauge.set(this.connections.size);
    });
    this.hooks.handle(stream, ip);
  }

  /** One security event per second at most for rate-limited connects, with the count: a flood stays a trickle. */
  private rateLimited(ip: string): void {
    this.rateLimitedSinceEvent++;
    const now = Date.now();
    if (now - this.lastRateLimitEvent < 1000) return;
    const ev = securityEvent('rate_limited', 'mqtt', 'connect_rate', undefined, ip);
    ev.count = this.rateLimitedSinceEvent;
    this.rateLimitedSinceEvent = 0;
    this.lastRateLimitEvent = now;
    this.hooks.security(ev);
  }
}
