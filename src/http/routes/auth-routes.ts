/** /auth: login, refresh, logout, agent token exchange (SPEC §4). */
import Type from 'typebox';
import type { App } from '../app-types.ts';
import type { RouteKit } from '../http-deps.ts';
import { TokenExchangeBody } from '../../contracts/agents.ts';
import { toPublicUser } from '../../auth/index.ts';

const LoginBody = Type.Object({
  username: Type.String({ minLength: 1, maxLength: 100 }),
  password: Type.String({ minLength: 1, maxLength: 1024 }),
  totp_code: Type.Optional(Type.String({ minLength: 6, maxLength: 32 })),
}, { additionalProperties: false });
const RefreshBody = Type.Object({ refresh_token: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false });
/** Optional: logout revokes the access token's own refresh family; a refresh token given here has its family revoked too. */
const LogoutBody = Type.Object({ refresh_token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })) }, { additionalProperties: false });

export function authRoutes(app: App, kit: RouteKit): void {
  const { users, tokens, agents, principals } = kit.services;
  const ipLimit = async (request: Parameters<RouteKit['rateLimits']['consume']>[0], reply: Parameters<RouteKit['rateLimits']['consume']>[1]) => kit.rateLimits.consume(request, reply, 'default');

  app.post('/auth/login', { schema: { tags: ['auth'], security: [], body: LoginBody }, config: { public: true }, preValidation: [ipLimit] }, async (request) => {
    const { pair, user, mfaSetupDeadline } = await users.login(request.body, request.ip);
    return {
      ...pair,
      user: {
        user_id: user.user_id, username: user.username, role: user.role, mfa_enabled: user.mfa_enabled,
        mfa_setup_required: mfaSetupDeadline !== null, mfa_setup_deadline: mfaSetupDeadline?.toISOString() ?? null,
      },
    };
  });

  app.post('/auth/refresh', { schema: { tags: ['auth'], security: [], body: RefreshBody }, config: { public: true }, preValidation: [ipLimit] }, async (request) => {
    // A refresh signs the user in again: it starts their MFA grace period as a login does (MfaPolicy).
    return tokens.refresh(request.body.refresh_token, async (p) => {
      const live = await principals.current(p);
      if (live?.type === 'user') await users.startMfaGrace(live);
      return live;
    });
  });

  app.post('/auth/logout', { schema: { tags: ['auth'], body: LogoutBody }, config: { mfaEnrolment: true }, ...kit.guard(null) }, async (request, reply) => {
    await tokens.logout(request.token!, request.body.refresh_token);
    return reply.status(204).send();
  });

  app.post('/auth/token', { schema: { tags: ['auth'], security: [], body: TokenExchangeBody }, config: { public: true }, preValidation: [ipLimit] }, async (request) => {
    return agents.exchangeApiKey(request.body.agent_id, request.body.api_key);
  });

  app.get('/auth/me', { schema: { tags: ['auth'] }, config: { mfaEnrolment: true }, ...kit.guard(null) }, async (request) => {
    const p = request.principal!;
    if (p.type === 'user') return { type: 'user', user: toPublicUser(await users.get(p.id)) };
    return { type: 'agent', agent: await agents.view(await agents.get(p.id)) };
  });
}
