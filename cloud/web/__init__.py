"""The browser layer shared by the staff console (cloud/console) and the customer portal.

One module per job: `passwords` (argon2 hashes), `totp` (second factor), `tables` (sessions,
credentials, sign-in throttle), `credentials` (set a password, enrol TOTP, check a sign-in with
lockout), `sessions` (server-side sessions and their cookie), `csrf` (form tokens), `templates`
(the Jinja2 environment), `static` (CSS and installed front-end packages), `audience` (one
audience = one cookie, one login page, one kind of subject: `staff` or `customer`).
"""
