// A real OpenID Connect provider for the tests: npm oidc-provider on 127.0.0.1.
//
//   node tests/oidc/provider.mjs CONFIG.json
//
// CONFIG: {port, client_id, client_secret, redirect_uris, post_logout_redirect_uris,
//          users_file, access_token_ttl}
// users_file: {"<login>": {"password": "...", "claims": {"email": ..., "groups": [...]}}}
// is read again at every login and userinfo call, so a test changes someone's groups "at
// the provider" by rewriting that file. Logins use the provider's own development login
// form (devInteractions: fields login and password); this script checks the password.
// Consent is granted automatically for the one client. Prints "READY <issuer>" when up.
import fs from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;

function users() {
  return JSON.parse(fs.readFileSync(config.users_file, 'utf8'));
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.client_id,
    client_secret: config.client_secret,
    redirect_uris: config.redirect_uris,
    post_logout_redirect_uris: config.post_logout_redirect_uris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  cookies: { keys: ['test-only-cookie-key-0123456789'] },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  ttl: { AccessToken: config.access_token_ttl || 3600 },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  async findAccount(ctx, id) {
    const user = users()[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, ...user.claims };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const existing = await ctx.oidc.provider.Grant.find(grantId);
      if (existing) return existing;
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ctx.oidc.requestParamScopes ? [...ctx.oidc.requestParamScopes].join(' ') : 'openid');
    grant.addOIDCClaims(['preferred_username', 'email', 'groups', 'name', 'email_verified']);
    await grant.save();
    return grant;
  },
});

// The development login form sends login + password; refuse a wrong password here, the way
// a real provider would, before oidc-provider's interaction handler sees the login.
provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && /^\/interaction\/[^/]+$/.test(ctx.path)) {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    const raw = Buffer.concat(chunks).toString('utf8');
    const form = new URLSearchParams(raw);
    if (form.get('prompt') === 'login') {
      const user = users()[form.get('login')];
      if (!user || user.password !== form.get('password')) {
        ctx.status = 401;
        ctx.type = 'html';
        ctx.body = '<!doctype html><p id="login-error">Invalid username or password.</p>';
        return;
      }
    }
    // oidc-provider reads an already consumed body from req.body.
    ctx.req.body = raw;
  }
  await next();
});

provider.listen(config.port, '127.0.0.1', () => {
  console.log(`READY ${issuer}`);
});
