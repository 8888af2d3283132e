package store

// NumMigrations lets the external tests check SchemaVersion against the
// migrations this binary carries.
var NumMigrations = len(migrations)

// NumPgMigrations is the PostgreSQL store's count.
var NumPgMigrations = len(pgMigrations)
