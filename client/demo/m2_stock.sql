-- koppel's Magento 2 schema fixture, part "stock": legacy CatalogInventory, MSI (Inventory), indexer state and
-- configuration, with the rows a fresh Magento Open Source 2.4 install puts in them.
-- Columns, types, keys and foreign keys follow Magento's declarative schema (module-catalog-inventory,
-- module-inventory, module-inventory-sales, module-inventory-reservations, module-indexer, module-config; see
-- /work/shared/reference/MAGENTO-SCHEMA.md). Constraint names and comments are left out so that a table prefix
-- never makes two constraint names collide. {prefix} is replaced by the table prefix when loaded.
-- Needs part "core" first (catalog_product_entity, store_website).
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
  `updated_at` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (`config_id`),
  UNIQUE KEY `CORE_CONFIG_DATA_SCOPE_SCOPE_ID_PATH` (`scope`,`scope_id`,`path`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `{prefix}cataloginventory_stock` (
  `stock_id` smallint(5) unsigned NOT NULL AUTO_INCREMENT,
  `website_id` smallint(5) unsigned NOT NULL,
  `stock_name` varchar(255) DEFAULT NULL,
  PRIMARY KEY (`stock_id`),
  KEY `CATALOGINVENTORY_STOCK_WEBSITE_ID` (`website_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `{prefix}cataloginventory_stock_item` (
  `item_id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `product_id` int(10) unsigned NOT NULL DEFAULT 0,
  `stock_id` smallint(5) unsigned NOT NULL DEFAULT 0,
  `qty` decimal(12,4) DEFAULT NULL,
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
  `website_id` smallint(5) unsigned NOT NULL DEFAULT 0,
  PRIMARY KEY (`item_id`),
  UNIQUE KEY `CATALOGINVENTORY_STOCK_ITEM_PRODUCT_ID_STOCK_ID` (`product_id`,`stock_id`),
  KEY `CATALOGINVENTORY_STOCK_ITEM_WEBSITE_ID` (`website_id`),
  KEY `CATALOGINVENTORY_STOCK_ITEM_WEBSITE_ID_PRODUCT_ID` (`website_id`,`product_id`),
  KEY `CATALOGINVENTORY_STOCK_ITEM_STOCK_ID` (`stock_id`),
  FOREIGN KEY (`product_id`) REFERENCES `{prefix}catalog_product_entity` (`entity_id`) ON DELETE CASCADE,
  FOREIGN KEY (`stock_id`) REFERENCES `{prefix}cataloginventory_stock` (`stock_id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `{prefix}cataloginventory_stock_status` (
  `product_id` int(10) unsigned NOT NULL,
  `website_id` smallint(5) unsigned NOT NULL,
  `stock_id` smallint(5) unsigned NOT NULL,
  `qty` decimal(12,4) NOT NULL DEFAULT 0.0000,
  `stock_status` smallint(5) unsigned NOT NULL,
  PRIMARY KEY (`product_id`,`website_id`,`stock_id`),
  KEY `CATALOGINVENTORY_STOCK_STATUS_STOCK_ID` (`stock_id`),
  KEY `CATALOGINVENTORY_STOCK_STATUS_WEBSITE_ID` (`website_id`),
  KEY `CATALOGINVENTORY_STOCK_STATUS_STOCK_STATUS` (`stock_status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `{prefix}inventory_source` (
  `source_code` varchar(255) NOT NULL,
  `name` varchar(255) NOT NULL,
  `enabled` smallint(5) unsigned NOT NULL DEFAULT 1,
  `description` text,
  `latitude` decimal(8,6) DEFAULT NULL,
  `longitude` decimal(9,6) DEFAULT NULL,
  `country_id` varchar(2) NOT NULL,
  `region_id` int(10) unsigned DEFAULT NULL,
  `region` varchar(255) DEFAULT NULL,
  `city` varchar(255) DEFAULT NULL,
  `street` varchar(255) DEFAULT NULL,
  `postcode` varchar(255) NOT NULL,
  `contact_name` varchar(255) DEFAULT NULL,
  `email` varchar(255) DEFAULT NULL,
  `phone` varchar(255) DEFAULT NULL,
  `fax` varchar(255) DEFAULT NULL,
  `use_default_carrier_config` smallint(5) unsigned NOT NULL DEFAULT 1,
  `is_pickup_location_active` tinyint(1) NOT NULL DEFAULT 0,
  `frontend_name` varchar(255) DEFAULT '',
  `frontend_description` text,
  PRIMARY KEY (`source_code`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `{prefix}inventory_stock` (
  `stock_id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(255) NOT NULL,
  PRIMARY KEY (`stock_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `{prefix}inventory_source_item` (
  `source_item_id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `source_code` varchar(255) NOT NULL,
  `sku` varchar(64) NOT NULL,
  `quantity` decimal(12,4) NOT NULL DEFAULT 0.0000,
  `status` smallint(5) unsigned NOT NULL DEFAULT 0,
  PRIMARY KEY (`source_item_id`),
  UNIQUE KEY `INVENTORY_SOURCE_ITEM_SOURCE_CODE_SKU` (`source_code`,`sku`),
  KEY `INVENTORY_SOURCE_ITEM_SKU_SOURCE_CODE_QUANTITY` (`sku`,`source_code`,`quantity`),
  FOREIGN KEY (`source_code`) REFERENCES `{prefix}inventory_source` (`source_code`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `{prefix}inventory_source_stock_link` (
  `link_id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `stock_id` int(10) unsigned NOT NULL,
  `source_code` varchar(255) NOT NULL,
  `priority` smallint(5) unsigned NOT NULL,
  PRIMARY KEY (`link_id`),
  UNIQUE KEY `INVENTORY_SOURCE_STOCK_LINK_STOCK_ID_SOURCE_CODE` (`stock_id`,`source_code`),
  KEY `INVENTORY_SOURCE_STOCK_LINK_STOCK_ID_PRIORITY` (`stock_id`,`priority`),
  KEY `INV_SOURCE_STOCK_LNK_SOURCE_CODE_INV_SOURCE_SOURCE_CODE` (`source_code`),
  FOREIGN KEY (`stock_id`) REFERENCES `{prefix}inventory_stock` (`stock_id`) ON DELETE CASCADE,
  FOREIGN KEY (`source_code`) REFERENCES `{prefix}inventory_source` (`source_code`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `{prefix}inventory_stock_sales_channel` (
  `type` varchar(64) NOT NULL,
  `code` varchar(64) NOT NULL,
  `stock_id` int(10) unsigned NOT NULL,
  PRIMARY KEY (`type`,`code`),
  KEY `INVENTORY_STOCK_SALES_CHANNEL_STOCK_ID_INVENTORY_STOCK_STOCK_ID` (`stock_id`),
  FOREIGN KEY (`stock_id`) REFERENCES `{prefix}inventory_stock` (`stock_id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `{prefix}inventory_reservation` (
  `reservation_id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `stock_id` int(10) unsigned NOT NULL,
  `sku` varchar(64) NOT NULL,
  `quantity` decimal(10,4) NOT NULL DEFAULT 0.0000,
  `metadata` varchar(255) DEFAULT NULL,
  PRIMARY KEY (`reservation_id`),
  KEY `INVENTORY_RESERVATION_STOCK_ID_SKU_QUANTITY` (`stock_id`,`sku`,`quantity`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `{prefix}indexer_state` (
  `state_id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `indexer_id` varchar(255) DEFAULT NULL,
  `status` varchar(16) DEFAULT 'invalid',
  `updated` datetime DEFAULT NULL,
  `hash_config` varchar(32) NOT NULL,
  PRIMARY KEY (`state_id`),
  KEY `INDEXER_STATE_INDEXER_ID` (`indexer_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE `{prefix}mview_state` (
  `state_id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `view_id` varchar(255) DEFAULT NULL,
  `mode` varchar(16) DEFAULT 'disabled',
  `status` varchar(16) DEFAULT 'idle',
  `updated` datetime DEFAULT NULL,
  `version_id` bigint(20) unsigned DEFAULT NULL,
  PRIMARY KEY (`state_id`),
  KEY `MVIEW_STATE_VIEW_ID` (`view_id`),
  KEY `MVIEW_STATE_MODE` (`mode`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Install seeds: CatalogInventory CreateDefaultStock; InventoryCatalog CreateDefaultSource, CreateDefaultStock,
-- AssignDefaultSourceToDefaultStock; InventorySales AssignWebsiteToDefaultStock. The indexer rows are what a
-- freshly reindexed shop in "Update on Save" mode holds (no changelog tables, no triggers).
INSERT INTO `{prefix}cataloginventory_stock` (stock_id, website_id, stock_name) VALUES (1, 0, 'Default');
INSERT INTO `{prefix}inventory_source` (source_code, name, enabled, description, latitude, longitude, country_id, postcode) VALUES ('default', 'Default Source', 1, 'Default Source', 0, 0, 'US', '00000');
INSERT INTO `{prefix}inventory_stock` (stock_id, name) VALUES (1, 'Default Stock');
INSERT INTO `{prefix}inventory_source_stock_link` (stock_id, source_code, priority) VALUES (1, 'default', 1);
INSERT INTO `{prefix}inventory_stock_sales_channel` (type, code, stock_id) VALUES ('website', 'base', 1);
INSERT INTO `{prefix}indexer_state` (indexer_id, status, updated, hash_config) VALUES ('cataloginventory_stock', 'valid', '2026-01-01 00:00:00', ''), ('inventory', 'valid', '2026-01-01 00:00:00', ''), ('catalog_product_price', 'valid', '2026-01-01 00:00:00', '');
INSERT INTO `{prefix}mview_state` (view_id, mode, status, updated, version_id) VALUES ('cataloginventory_stock', 'disabled', 'idle', '2026-01-01 00:00:00', 0), ('inventory', 'disabled', 'idle', '2026-01-01 00:00:00', 0), ('catalog_product_price', 'disabled', 'idle', '2026-01-01 00:00:00', 0);
INSERT INTO `{prefix}setup_module` (module, schema_version, data_version) VALUES ('Magento_CatalogInventory', '2.0.3', '2.0.3'), ('Magento_Inventory', '1.2.0', '1.2.0'), ('Magento_InventoryApi', '1.2.0', '1.2.0');
SET SESSION foreign_key_checks = @koppel_old_fk;
SET SESSION sql_mode = @koppel_old_sql_mode;
