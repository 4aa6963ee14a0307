from tests.mariadb import PrivateMariaDB


def test_private_server_starts_stops_and_restarts(tmp_path):
    private = PrivateMariaDB(str(tmp_path / "db"))
    try:
        private.start()
        server = private.server()
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        private.stop()
        private.start()
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            assert "MariaDB" in cur.fetchone()[0]
    finally:
        private.cleanup()
