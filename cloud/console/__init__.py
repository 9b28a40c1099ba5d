"""The staff console: server-rendered pages under /console/ over the same services as the API
(docs/console.md). Staff sign in with the users of `cloud.auth` (same roles, same municipality
scope); the mechanics of sign-in, sessions and forms are cloud/web's."""
