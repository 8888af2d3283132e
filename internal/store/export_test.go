package store

// NumMigrations lets the external tests check SchemaVersion against the
// migrations this binary carries.
var NumMigrations = len(migrations)

// NumPgMigrations is the PostgreSQL store's count.
var NumPgMigrations = len(pgMigrations)

// PgTxTries is how often InTx runs fn on serialization failures.
const PgTxTries = pgTxTries

// Migrations and PgMigrations let a test build a database at an older
// schema.
var (
	Migrations   = migrations
	PgMigrations = pgMigrations
)
