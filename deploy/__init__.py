"""Getting the agent onto a webserver: release bundle, SSH/SFTP and FTP(S) targets, deploy and rollback."""
