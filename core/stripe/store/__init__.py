"""The one owner of the SQL on the tables of Stripe's objects, used by the API and the
payment consumer alike: a module per table (`payments`, `subscriptions`, `customers`,
`events`), and `rows` for what payments and subscriptions share."""
