"""The collection tables of both engines: their migrations (one entry per schema version, applied in order when a
store opens; never edit an entry that has shipped: append one), the face columns both engines read, and the record a
SQLite face row makes. Schema 4 is the newest (``seen_signatures``); both engines are at the same version."""

from __future__ import annotations

import numpy as np

from .interface import StoredFace

#: the SQLite schema, one migration per entry; ``PRAGMA user_version`` is the number applied. Never edit an entry that
#: has shipped: append a new one.
SQLITE_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('seq', 0), ('log_floor', 0);
    CREATE TABLE collections (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: faces of a deleted collection cannot reappear
        collection_id TEXT NOT NULL UNIQUE,
        model TEXT NOT NULL,
        metric TEXT NOT NULL,
        dimension INTEGER NOT NULL,
        created_at REAL NOT NULL,
        generation TEXT NOT NULL,
        face_count INTEGER NOT NULL DEFAULT 0,
        tags TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE faces (
        coll INTEGER NOT NULL REFERENCES collections (id),
        face_id TEXT NOT NULL,
        image_id TEXT NOT NULL,
        external_image_id TEXT,
        box_width REAL NOT NULL,
        box_height REAL NOT NULL,
        box_left REAL NOT NULL,
        box_top REAL NOT NULL,
        confidence REAL NOT NULL,
        embedding BLOB NOT NULL,
        image_sha256 TEXT NOT NULL,
        indexed_at REAL NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (coll, face_id)
    ) WITHOUT ROWID;
    CREATE INDEX faces_by_seq ON faces (coll, seq);
    CREATE TABLE deletions (
        seq INTEGER PRIMARY KEY,
        coll INTEGER NOT NULL,
        face_id TEXT NOT NULL
    );
    CREATE INDEX deletions_by_coll ON deletions (coll, seq);
    """,
    # 2: Rekognition Users: a face's user, the users, and the digests of recent ClientRequestTokens
    """
    ALTER TABLE faces ADD COLUMN user_id TEXT;
    CREATE INDEX faces_by_user ON faces (coll, user_id) WHERE user_id IS NOT NULL;
    ALTER TABLE collections ADD COLUMN user_count INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE users (
        coll INTEGER NOT NULL REFERENCES collections (id),
        user_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        face_count INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (coll, user_id)
    ) WITHOUT ROWID;
    CREATE TABLE user_requests (
        coll INTEGER NOT NULL REFERENCES collections (id),
        token TEXT NOT NULL,
        digest TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (coll, token)
    ) WITHOUT ROWID;
    CREATE INDEX user_requests_by_time ON user_requests (created_at);
    """,
    # 3: the key that signs pagination tokens: random, made once with the schema, shared by every process on the file
    """
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    INSERT INTO secrets (name, value) VALUES ('pagination', randomblob(32));
    """,
    # 4: the SigV4 signatures of state-changing requests accepted within the clock-skew window (their SHA-256), shared
    # by every process on the file, so a replay is refused whichever worker it reaches
    """
    CREATE TABLE seen_signatures (
        digest BLOB PRIMARY KEY,
        until REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX seen_signatures_by_time ON seen_signatures (until);
    """,
)

#: the PostgreSQL schema, one entry per version (the ``facecompare_schema_version`` table holds the number
#: applied): the statements that bring version n to n + 1 (append; never edit a released one)
POSTGRES_MIGRATIONS: list[tuple[str, ...]] = [
    # 1: collections, faces, the deletion log and the change sequence
    ("CREATE SEQUENCE facecompare_change_seq AS bigint",
    """
    CREATE TABLE facecompare_collections (
        collection_id   text COLLATE "C" PRIMARY KEY,
        model           text NOT NULL,
        metric          text NOT NULL,
        dimension       integer NOT NULL CHECK (dimension > 0),
        tags            jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at      double precision NOT NULL,
        generation      text NOT NULL,
        face_count      bigint NOT NULL DEFAULT 0,
        last_seq        bigint NOT NULL DEFAULT 0,
        pruned_through  bigint NOT NULL DEFAULT 0
    )""",
    """
    CREATE TABLE facecompare_faces (
        collection_id     text COLLATE "C" NOT NULL
                          REFERENCES facecompare_collections (collection_id) ON DELETE CASCADE,
        face_id           text COLLATE "C" NOT NULL,
        image_id          text NOT NULL,
        external_image_id text,
        box_width         double precision NOT NULL,
        box_height        double precision NOT NULL,
        box_left          double precision NOT NULL,
        box_top           double precision NOT NULL,
        confidence        double precision NOT NULL,
        embedding         bytea NOT NULL,
        image_sha256      text NOT NULL,
        indexed_at        double precision NOT NULL,
        seq               bigint NOT NULL,
        PRIMARY KEY (collection_id, face_id)
    )""",
    "CREATE INDEX facecompare_faces_seq ON facecompare_faces (collection_id, seq)",
    """
    CREATE TABLE facecompare_face_deletions (
        collection_id text COLLATE "C" NOT NULL
                      REFERENCES facecompare_collections (collection_id) ON DELETE CASCADE,
        seq           bigint NOT NULL,
        face_id       text COLLATE "C" NOT NULL,
        deleted_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (collection_id, seq)
    )"""),
    # 2: Rekognition Users: a face's user, the users, and the digests of recent ClientRequestTokens
    ('ALTER TABLE facecompare_faces ADD COLUMN user_id text COLLATE "C"',
     "CREATE INDEX facecompare_faces_user ON facecompare_faces (collection_id, user_id) WHERE user_id IS NOT NULL",
     "ALTER TABLE facecompare_collections ADD COLUMN user_count bigint NOT NULL DEFAULT 0",
     """
    CREATE TABLE facecompare_users (
        collection_id text COLLATE "C" NOT NULL
                      REFERENCES facecompare_collections (collection_id) ON DELETE CASCADE,
        user_id       text COLLATE "C" NOT NULL,
        created_at    double precision NOT NULL,
        face_count    integer NOT NULL DEFAULT 0,
        PRIMARY KEY (collection_id, user_id)
    )""",
     """
    CREATE TABLE facecompare_user_requests (
        collection_id text COLLATE "C" NOT NULL
                      REFERENCES facecompare_collections (collection_id) ON DELETE CASCADE,
        token         text NOT NULL,
        digest        text NOT NULL,
        created_at    double precision NOT NULL,
        PRIMARY KEY (collection_id, token)
    )""",
     "CREATE INDEX facecompare_user_requests_time ON facecompare_user_requests (created_at)"),
    # 3: the key that signs pagination tokens: random (two gen_random_uuid()s, from the server's strong random
    # source), made once with the schema, shared by every replica on the database whatever URL it uses
    ("CREATE TABLE facecompare_secrets (name text COLLATE \"C\" PRIMARY KEY, value bytea NOT NULL)",
     "INSERT INTO facecompare_secrets (name, value) VALUES ('pagination', "
     "uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))"),
    # 4: the SigV4 signatures of state-changing requests accepted within the clock-skew window (their SHA-256), shared
    # by every replica on the database, so a replay is refused whichever of them it reaches
    ("CREATE TABLE facecompare_seen_signatures (digest bytea PRIMARY KEY, until double precision NOT NULL)",
     "CREATE INDEX facecompare_seen_signatures_time ON facecompare_seen_signatures (until)"),
]

#: seconds a ClientRequestToken's digest is kept (a retry comes within seconds; boto3 makes a new one per call)
REQUEST_TOKEN_SECONDS = 24 * 3600.0

#: a face row's columns in the order :func:`face_from_sqlite_row` and the PostgreSQL engine read them
FACE_COLUMNS = ("face_id, image_id, external_image_id, box_width, box_height, box_left, box_top, confidence, "
                 "embedding, image_sha256, indexed_at, user_id")


def face_from_sqlite_row(row: tuple) -> StoredFace:
    """The face of a row of SQLite's ``faces`` table read in :data:`FACE_COLUMNS` order."""
    (face_id, image_id, external, w, h, left, top, confidence, blob, sha, indexed_at, user_id) = row
    return StoredFace(face_id=face_id, image_id=image_id, external_image_id=external,
                      bounding_box=(w, h, left, top), confidence=confidence,
                      embedding=np.frombuffer(blob, dtype=np.float32).copy(), image_sha256=sha,
                      indexed_at=indexed_at, user_id=user_id)

