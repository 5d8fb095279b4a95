"""Partner integrations: connectors that pull partners' transactions into the warehouse."""
