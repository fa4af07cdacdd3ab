"""The admin's physical inventory: regions, clusters, hosts, IP and image pools, flavors."""
