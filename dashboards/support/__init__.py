"""The support console: look up a customer or technician, sign them out remotely, view the app as them, with
every lookup and action authorized by a version-controlled role file and written to a hash-chained audit log.

identity.py       who is asking: a sign-in (st.login), or the auth proxy's header with its secret; dev mode
roles.yaml/.py    what each role may do and which personal data it sees
console.py        the one entry point: authorize, audit, then act
lookup.py         read-only queries on the published snapshot, all values bound as parameters
masking.py        personal data masked for roles that may not see it
actions.py        the remote-logout outbox the mobile backend consumes and acknowledges
impersonation.py  read-only, time-limited "view as user" sessions
audit.py          the append-only, hash-chained audit log, its head witness and its `verify` command
store.py          where the console writes (PITWALL_DATA_DIR/console/) and how it opens those files

The page is dashboards/views/support_console.py; docs/support-console.md explains the whole.
"""
