/**
 * The dashboard (SPEC §12) at `/`: a static page and its ES modules from `web/` (no build step,
 * so the two-command set-up stays two commands), plus the Socket.IO browser client from
 * `socket.io-client`. The files are read once at start into memory and served from a fixed map
 * (no path from the request reaches the filesystem). Public, IP rate-limited; the page talks to
 * the API with the signed-in user's token like any client, under the app's CSP (script-src 'self').
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RouteKit } from '../http-deps.ts';
import { AppError } from '../../core/index.ts';

const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../web');
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
const ASSETS = ['style.css', 'js/app.js', 'js/client.js', 'js/views.js', 'js/live-stats.js'];

interface Asset { body: Buffer; type: string }

function loadAssets(): Map<string, Asset> | null {
  if (!existsSync(path.join(WEB_DIR, 'index.html'))) return null;
  const read = (file: string): Asset => ({ body: readFileSync(file), type: TYPES[path.extname(file)] ?? 'application/octet-stream' });
  const assets = new Map<string, Asset>([['/', read(path.join(WEB_DIR, 'index.html'))]]);
  for (const a of ASSETS) assets.set(`/ui/${a}`, read(path.join(WEB_DIR, a)));
  const socketIo = path.join(path.dirname(createRequire(import.meta.url).resolve('socket.io-client/package.json')), 'dist/socket.io.esm.min.js');
  assets.set('/ui/vendor/socket.io.esm.min.js', read(socketIo));
  return assets;
}

export function dashboardRoutes(app: FastifyInstance, kit: RouteKit): void {
  const assets = loadAssets();
  if (!assets) return; // an install without web/ (a trimmed image) serves the API only
  const serve = async (request: FastifyRequest, reply: FastifyReply) => {
    const asset = assets.get(request.url.split('?')[0]!);
    if (!asset) throw new AppError('NOT_FOUND', 'No such file.');
    reply.header('content-type', asset.type);
    reply.header('cache-control', 'no-cache');
    return reply.send(asset.body);
  };
  const opts = { schema: { hide: true }, config: { public: true }, preValidation: [async (request: FastifyRequest, reply: FastifyReply) => kit.rateLimits.consume(request, reply, 'default')] };
  app.get('/', opts, serve);
  app.get('/ui/*', opts, serve);
}
