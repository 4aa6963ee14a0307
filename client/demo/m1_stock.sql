-- koppel's Magento 1 schema fixture, part "stock": CatalogInventory tables, configuration and index processes,
-- with the rows a fresh Magento 1.9 / OpenMage install puts in them.
-- Columns, types, keys and foreign keys follow the executed install scripts of Mage_CatalogInventory, Mage_Core
-- and Mage_Index (see /work/shared/reference/MAGENTO-SCHEMA.md). Constraint names and comments are left out so
-- that a table prefix never makes two constraint names collide. {prefix} is replaced by the table prefix.
-- Needs part "core" first (catalog_product_entity, core_website).
SET @koppel_old_sql_mode = @@SESSION.sql_mode;
SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO';
SET @koppel_old_fk = @@SESSION.foreign_key_checks;
SET SESSION foreign_key_checks = 0;

CREATE TABLE `{prefix}core_config_data` (
  `config_id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `scope` varchar(8) NOT NULL DEFAULT 'default',
  `scope_id` int(11) NOT NULL DEFAULT 0,
  `path` varchar(255) NOT NULL DEFAULT 'general',
  `value` text,
  `updated_at` timestamp NULL DEFAULT NULL,
  PRIMARY KEY (`config_id`),
  UNIQUE KEY `UNQ_CORE_CONFIG_DATA_SCOPE_SCOPE_ID_PATH` (`scope`,`scope_id`,`path`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `{prefix}cataloginventory_stock` (
  `stock_id` smallint(5) unsigned NOT NULL AUTO_INCREMENT,
  `stock_name` varchar(255) DEFAULT NULL,
  PRIMARY KEY (`stock_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `{prefix}cataloginventory_stock_item` (
  `item_id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `product_id` int(10) unsigned NOT NULL DEFAULT 0,
  `stock_id` smallint(5) unsigned NOT NULL DEFAULT 0,
  `qty` decimal(12,4) NOT NULL DEFAULT 0.0000,
  `min_qty` decimal(12,4) NOT NULL DEFAULT 0.0000,
  `use_config_min_qty` smallint(5) unsigned NOT NULL DEFAULT 1,
  `is_qty_decimal` smallint(5) unsigned NOT NULL DEFAULT 0,
  `backorders` smallint(5) unsigned NOT NULL DEFAULT 0,
  `use_config_backorders` smallint(5) unsigned NOT NULL DEFAULT 1,
  `min_sale_qty` decimal(12,4) NOT NULL DEFAULT 1.0000,
  `use_config_min_sale_qty` smallint(5) unsigned NOT NULL DEFAULT 1,
  `max_sale_qty` decimal(12,4) NOT NULL DEFAULT 0.0000,
  `use_config_max_sale_qty` smallint(5) unsigned NOT NULL DEFAULT 1,
  `is_in_stock` smallint(5) unsigned NOT NULL DEFAULT 0,
  `low_stock_date` timestamp NULL DEFAULT NULL,
  `notify_stock_qty` decimal(12,4) DEFAULT NULL,
  `use_config_notify_stock_qty` smallint(5) unsigned NOT NULL DEFAULT 1,
  `manage_stock` smallint(5) unsigned NOT NULL DEFAULT 0,
  `use_config_manage_stock` smallint(5) unsigned NOT NULL DEFAULT 1,
  `stock_status_changed_auto` smallint(5) unsigned NOT NULL DEFAULT 0,
  `use_config_qty_increments` smallint(5) unsigned NOT NULL DEFAULT 1,
  `qty_increments` decimal(12,4) NOT NULL DEFAULT 0.0000,
  `use_config_enable_qty_inc` smallint(5) unsigned NOT NULL DEFAULT 1,
  `enable_qty_increments` smallint(5) unsigned NOT NULL DEFAULT 0,
  `is_decimal_divided` smallint(5) unsigned NOT NULL DEFAULT 0,
  PRIMARY KEY (`item_id`),
  UNIQUE KEY `UNQ_CATALOGINVENTORY_STOCK_ITEM_PRODUCT_ID_STOCK_ID` (`product_id`,`stock_id`),
  KEY `IDX_CATALOGINVENTORY_STOCK_ITEM_PRODUCT_ID` (`product_id`),
  KEY `IDX_CATALOGINVENTORY_STOCK_ITEM_STOCK_ID` (`stock_id`),
  FOREIGN KEY (`product_id`) REFERENCES `{prefix}catalog_product_entity` (`entity_id`) ON DELETE CASCADE ON UPDATE CASCADE,
  FOREIGN KEY (`stock_id`) REFERENCES `{prefix}cataloginventory_stock` (`stock_id`) ON DELETE CASCADE ON UPDATE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `{prefix}cataloginventory_stock_status` (
  `product_id` int(10) unsigned NOT NULL,
  `website_id` smallint(5) unsigned NOT NULL,
  `stock_id` smallint(5) unsigned NOT NULL,
  `qty` decimal(12,4) NOT NULL DEFAULT 0.0000,
  `stock_status` smallint(5) unsigned NOT NULL,
  PRIMARY KEY (`product_id`,`website_id`,`stock_id`),
  KEY `IDX_CATALOGINVENTORY_STOCK_STATUS_STOCK_ID` (`stock_id`),
  KEY `IDX_CATALOGINVENTORY_STOCK_STATUS_WEBSITE_ID` (`website_id`),
  FOREIGN KEY (`product_id`) REFERENCES `{prefix}catalog_product_entity` (`entity_id`) ON DELETE CASCADE ON UPDATE CASCADE,
  FOREIGN KEY (`stock_id`) REFERENCES `{prefix}cataloginventory_stock` (`stock_id`) ON DELETE CASCADE ON UPDATE CASCADE,
  FOREIGN KEY (`website_id`) REFERENCES `{prefix}core_website` (`website_id`) ON DELETE CASCADE ON UPDATE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `{prefix}index_process` (
  `process_id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `indexer_code` varchar(32) NOT NULL,
  `status` varchar(15) NOT NULL DEFAULT 'pending',
  `started_at` timestamp NULL DEFAULT NULL,
  `ended_at` timestamp NULL DEFAULT NULL,
  `mode` varchar(9) NOT NULL DEFAULT 'real_time',
  PRIMARY KEY (`process_id`),
  UNIQUE KEY `UNQ_INDEX_PROCESS_INDEXER_CODE` (`indexer_code`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Install seeds: Mage_CatalogInventory install-1.6.0.0 (stock 1 'Default') and the index processes the
-- Index module registers (status after a completed reindex).
INSERT INTO `{prefix}cataloginventory_stock` (stock_id, stock_name) VALUES (1, 'Default');
INSERT INTO `{prefix}index_process` (process_id, indexer_code, status, mode) VALUES (1, 'catalog_product_attribute', 'pending', 'real_time'), (2, 'catalog_product_price', 'pending', 'real_time'), (3, 'catalog_url', 'pending', 'real_time'), (4, 'catalog_product_flat', 'pending', 'real_time'), (5, 'catalog_category_flat', 'pending', 'real_time'), (6, 'catalog_category_product', 'pending', 'real_time'), (7, 'catalogsearch_fulltext', 'pending', 'real_time'), (8, 'cataloginventory_stock', 'pending', 'real_time'), (9, 'tag_summary', 'pending', 'real_time');
SET SESSION foreign_key_checks = @koppel_old_fk;
SET SESSION sql_mode = @koppel_old_sql_mode;
