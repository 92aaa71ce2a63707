"""Units of work. Each public function is one transaction: it commits once, and anything it
hands to the broker is sent only after that commit."""
