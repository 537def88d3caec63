/** /users: user management for admins (SPEC §4.1, `user:manage`). */
import Type from 'typebox';
import type { App } from '../app-types.ts';
import type { RouteKit } from '../http-deps.ts';
import { IdParams, ListQuery, paginate } from '../../contracts/common.ts';
import { RoleSchema } from '../../contracts/agents.ts';
import { USER_SORTS, toPublicUser } from '../../auth/index.ts';

const CreateUserBody = Type.Object({
  username: Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_.@-]+$' }),
  password: Type.String({ minLength: 1, maxLength: 1024 }),
  role: RoleSchema,
}, { additionalProperties: false });
const UpdateUserBody = Type.Object({
  role: Type.Optional(RoleSchema),
  disabled: Type.Optional(Type.Boolean()),
  password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
}, { additionalProperties: false });
const UserListQuery = Type.Object({
  ...ListQuery,
  /** SPEC §2; default `created_at:asc` (UserService.list). */
  sort: Type.Optional(Type.Enum(USER_SORTS)),
}, { additionalProperties: false });
const Params = IdParams('user_id');

export function userRoutes(app: App, kit: RouteKit): void {
  const { users } = kit.services;
  const tags = ['users'];
  app.get('/users', { schema: { tags, querystring: UserListQuery }, ...kit.guard('user:manage') }, async (request) => {
    const limit = request.query.limit ?? 50;
    const offset = request.query.offset ?? 0;
    const { users: rows, total } = await users.list(limit, offset, request.query.sort);
    return { users: rows.map(toPublicUser), pagination: paginate(total, limit, offset) };
  });
  app.post('/users', { schema: { tags, body: CreateUserBody }, config: { idempotent: true }, ...kit.guard('user:manage') }, async (request, reply) => {
    return reply.status(201).send(toPublicUser(await users.create(request.body)));
  });
  app.get('/users/:user_id', { schema: { tags, params: Params }, ...kit.guard('user:manage') }, async (request) => toPublicUser(await users.get(request.params.user_id)));
  app.patch('/users/:user_id', { schema: { tags, params: Params, body: UpdateUserBody }, ...kit.guard('user:manage') }, async (request) => {
    return toPublicUser(await users.update(request.params.user_id, request.body));
  });
  app.delete('/users/:user_id', { schema: { tags, params: Params }, ...kit.guard('user:manage') }, async (request, reply) => {
    await users.remove(request.params.user_id);
    return reply.status(204).send();
  });
}
