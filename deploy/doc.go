// Package deploy holds no code: deploy/nginx is the Nginx configuration,
// deploy/local/cluster.sh starts the whole topology on one machine, and
// this package's tests check both through a real Nginx (edge_test.go) and
// run the short fault run (fault_test.go).
package deploy
