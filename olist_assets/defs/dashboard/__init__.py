"""The dashboard over the marts (olist_dashboard): the last asset of the graph, what users see."""
