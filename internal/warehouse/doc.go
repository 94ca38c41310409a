// Package warehouse is the reporting side of Yolda: it turns the EVENTS
// stream into facts shaped for analysis (one row per request, kept current;
// one row per event; one row per insurer call) and answers the report
// queries over them. It is what the `warehouse` role runs.
//
// It is not a copy of the operational database. What it keeps is chosen so
// that it can be kept for years: no names, phones, plates, addresses,
// policy numbers or account ids, and locations only to a cell of about
// 11 km and to district (see Sanitize). Reports read the warehouse and never
// the operational database.
//
// The package holds the rules (what an event means for a request's fact,
// which report dimensions exist, how a range is validated); the engines
// live in internal/warehouse/duckdb and internal/warehouse/postgres and
// pass the one conformance suite in internal/warehouse/warehousetest.
// Nothing here talks to a broker or an HTTP client.
package warehouse
