DROP TABLE recap_instance;
