"""The cluster around the roles: Redis (connections, the embedded and head servers, its clock), each
process's heartbeat, the views of it all (status, doctor, dashboard) and `azjobs run` on one machine
(local mode, its roles as child processes)."""
